package pluginhosttest_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/pluginhost/pluginhost/examples/plugins/notes"
	"github.com/pluginhost/pluginhost/pluginhosttest"
)

// This is how a plugin's test starts it: on a fresh in-memory SQLite
// database of its own, behind an httptest server, all closed when the test
// ends. (An Example cannot receive a *testing.T; TestStart below runs the
// same code.)
func ExampleStart() {
	var t *testing.T // your test's t

	inst := pluginhosttest.Start(t, pluginhosttest.Options{}, notes.New())
	resp := inst.Do(t, "POST", "/api/plugin/notes/notes", map[string]string{"title": "hello"})
	if resp.Status != http.StatusCreated {
		t.Fatalf("status %d: %s", resp.Status, resp.Body)
	}
	var list []notes.Note
	inst.Do(t, "GET", "/api/plugin/notes/notes", nil).JSON(t, &list)
	fmt.Println(len(list), "notes")
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
