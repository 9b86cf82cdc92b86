// Package consoletest holds the browser test of the admin web console: it
// builds and starts the example host (examples/host) on 127.0.0.1 and
// drives the console at /admin/ in a real headless Chromium through
// chromedp.
//
// It is a module of its own so that chromedp is no requirement of the
// pluginhost module: `go test ./...` at the repository's root does not run
// it; run it from this folder:
//
//	cd admin/consoletest && PLUGINHOST_REQUIRE_BROWSER=1 go test -count=1 ./...
//
// The test needs a Chromium (Debian: apt-get install chromium) and the go
// command, to build the example host. Without a Chromium it skips, unless
// PLUGINHOST_REQUIRE_BROWSER is set, when it fails. Screenshots go to
// PLUGINHOST_CONSOLE_ARTIFACTS when set (a folder, created if need be), else
// to the test's temporary folder; the test logs their paths.
package consoletest
