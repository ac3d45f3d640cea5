package onvif

// PickXAddr is pickXAddr, for the external tests.
var PickXAddr = pickXAddr
