// Package configs holds the example configuration files. Its only Go code
// is a test that keeps configs/villagehub.yaml the complete, commented
// reference of every setting the hub reads.
package configs
