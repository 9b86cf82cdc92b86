package pluginhosttest_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/pluginhost/pluginhost"
	"github.com/pluginhost/pluginhost/examples/plugins/notes"
	"github.com/pluginhost/pluginhost/pluginhosttest"
)

// This is how a plugin's test starts it: on a fresh in-memory SQLite
// database of its own, behind an httptest server, all closed when the test
// ends.
//
// This Example has no Output, so go test compiles it but does not run it:
// Start needs the *testing.T of a running test, which an Example does not
// receive. TestStart below runs the same steps and checks what they return.
func ExampleStart() {
	var t *testing.T // your test's t

	inst := pluginhosttest.Start(t, pluginhosttest.Options{}, notes.New())
	resp := inst.Do(t, "POST", "/api/plugin/notes/notes", map[string]string{"title": "hello"})
	if resp.Status != http.StatusCreated {
		t.Fatalf("status %d: %s", resp.Status, resp.Body)
	}
	var list []notes.Note
	inst.Do(t, "GET", "/api/plugin/notes/notes", nil).JSON(t, &list)
	fmt.Println(len(list), "notes") // 2 notes: the one the plugin seeds and ours
}

func TestStart(t *testing.T) {
	t.Parallel()
	inst := pluginhosttest.Start(t, pluginhosttest.Options{}, notes.New())
	resp := inst.Do(t, "POST", "/api/plugin/notes/notes", map[string]string{"title": "hello"})
	if resp.Status != http.StatusCreated {
		t.Fatalf("status %d: %s", resp.Status, resp.Body)
	}
	var list []notes.Note
	inst.Do(t, "GET", "/api/plugin/notes/notes", nil).JSON(t, &list)
	if len(list) != 2 || list[1].Title != "hello" {
		t.Fatalf("want the seeded note and ours, got %+v", list)
	}
}

// A test reaches the plugin's own tables through its Host, whose DB knows
// their physical names and takes "?" placeholders on both databases.
//
// Like ExampleStart, this Example has no Output because it needs a running
// test's *testing.T; TestHost below runs the same steps.
func ExampleInstance_Host() {
	var t *testing.T // your test's t

	inst := pluginhosttest.Start(t, pluginhosttest.Options{}, notes.New())
	db := inst.Host(t, "notes").DB()
	var n int
	if err := db.QueryRowContext(t.Context(), "SELECT count(*) FROM "+db.Table("notes")+" WHERE title = ?", "Welcome").Scan(&n); err != nil {
		t.Fatal(err)
	}
	fmt.Println(n, "welcome note") // 1 welcome note, written by the plugin's SeedOnce
}

// An upgrade test: the old version writes data, the new one starts on the
// same database and must find it (its migrations run on it).
//
// No Output: it needs a running test's *testing.T;
// TestRestartWithANewVersionUpgradesThePlugin runs these steps with two
// versions of a plugin of its own.
func ExampleInstance_Restart() {
	var t *testing.T             // your test's t
	var v1, v2 pluginhost.Plugin // two versions of your plugin, v2 with a higher version and a migration

	inst := pluginhosttest.Start(t, pluginhosttest.Options{}, v1)
	inst.Do(t, "POST", "/api/plugin/notes/notes", map[string]string{"title": "written by v1"})
	inst.Restart(t, v2) // same database, a new Manager with v2 only
	resp := inst.Do(t, "GET", "/api/plugin/notes/notes", nil)
	fmt.Println(resp.Status) // 200, with the note v1 wrote
}

// A test of PostgreSQL behaviour only: EachDatabase given one dialect runs
// that subtest alone (skipped, with the reason, unless
// PLUGINHOST_TEST_POSTGRES_URL is set).
//
// No Output: it needs a running test's *testing.T.
func ExampleEachDatabase() {
	var t *testing.T // your test's t

	pluginhosttest.EachDatabase(t, func(t *testing.T, opts pluginhosttest.Options) {
		inst := pluginhosttest.Start(t, opts, notes.New())
		var version string
		_ = inst.DB.QueryRow(`SELECT version()`).Scan(&version)
		fmt.Println(version) // PostgreSQL 15.…
	}, pluginhost.Postgres)
}

func TestHost(t *testing.T) {
	t.Parallel()
	inst := pluginhosttest.Start(t, pluginhosttest.Options{}, notes.New())
	db := inst.Host(t, "notes").DB()
	var n int
	if err := db.QueryRowContext(t.Context(), "SELECT count(*) FROM "+db.Table("notes")+" WHERE title = ?", "Welcome").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Fatalf("want 1 welcome note, got %d", n)
	}
}
