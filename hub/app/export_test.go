package app

import (
	"reflect"

	"villagehub/hub/config"
)

// ConfigKeys are config.Config's top-level keys as written in the file.
func ConfigKeys() []string {
	var keys []string
	t := reflect.TypeOf(config.Config{})
	for i := range t.NumField() {
		if k := yamlName(t.Field(i)); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}
