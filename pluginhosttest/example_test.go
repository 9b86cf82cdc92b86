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
