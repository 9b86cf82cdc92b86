// Package pluginhost hosts plugins in-process.
package pluginhost
