// Package all compiles in every input of the hub: one import line each.
// hub/app imports it and builds the configured instances with input.Build.
package all

import (
	_ "villagehub/hub/input/frigate"
	_ "villagehub/hub/input/mqtt"
	_ "villagehub/hub/input/onvifevents"
)
