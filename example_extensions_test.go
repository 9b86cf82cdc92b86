package pluginhost_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"

	_ "github.com/mattn/go-sqlite3" // the SQLite driver

	"github.com/pluginhost/pluginhost"
)

// Greeter is the interface of the host's extension point
// "greeting.language": one provider per language.
type Greeter interface {
	Greet(name string) string
}

// greeting is a Greeter that puts a word before the name.
type greeting string

func (g greeting) Greet(name string) string { return string(g) + ", " + name }

// languagePlugin provides a greeting for each of its languages in Init.
type languagePlugin struct {
	id        string
	greetings map[string]string // language → word, provided in key order
	after     string            // a dependency, or ""
}

var _ pluginhost.Initializer = (*languagePlugin)(nil)

func (p *languagePlugin) Manifest() []byte {
	m := fmt.Sprintf("id = %q\nname = %q\nversion = \"1.0.0\"\n", p.id, p.id)
	if p.after != "" {
		m += fmt.Sprintf("[dependencies]\n%s = \"^1.0\"\n", p.after)
	}
	return []byte(m)
}

func (p *languagePlugin) Init(ctx context.Context, h *pluginhost.Host) error {
	for _, lang := range []string{"en", "en-gb", "fr", "de"} {
		if word, ok := p.greetings[lang]; ok {
			// Provide[Greeter] checks at compile time that greeting is one.
			if err := pluginhost.Provide[Greeter](h, "greeting.language", lang, greeting(word)); err != nil {
				return err
			}
		}
	}
	return nil
}

func ExampleExtensionPoint() {
	ctx := context.Background()
	db, err := sql.Open("sqlite3", "file:/example_extensions?vfs=memdb")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer db.Close()

	// "continental" depends on "british", so it comes after it in plugin
	// order, and its providers after british's, whatever the ids.
	reg := pluginhost.NewRegistry()
	for _, p := range []*languagePlugin{
		{id: "continental", greetings: map[string]string{"fr": "Bonjour", "de": "Hallo"}, after: "british"},
		{id: "british", greetings: map[string]string{"en": "Hello", "en-gb": "Good morning"}},
	} {
		if err := reg.Register(p); err != nil {
			fmt.Println(err)
			return
		}
	}
	m, err := pluginhost.New(pluginhost.Config{DB: db, Registry: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Println(err)
		return
	}
	// The host declares the point before Start, so that every plugin's Init
	// can provide to it; a plugin could declare one in its Init too.
	languages, err := pluginhost.DeclareExtensionPoint[Greeter](m, "greeting.language")
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := m.Start(ctx); err != nil {
		fmt.Println(err)
		return
	}
	defer m.Shutdown(ctx)

	// Every provider of a running plugin, in plugin order.
	for _, p := range languages.Providers() {
		fmt.Printf("%s from %s: %s\n", p.Name, p.Plugin, p.Impl.Greet("Ada"))
	}

	// One by name: Get does not allocate.
	if g, ok := languages.Get("fr"); ok {
		fmt.Println(g.Greet("Grace"))
	}

	// Calls through Each and Call are contained: a provider's panic is
	// recovered, logged and counted against its plugin, and returned.
	err = languages.Call(ctx, "de", func(ctx context.Context, g Greeter) error {
		fmt.Println(g.Greet("Linus"))
		return nil
	})
	fmt.Println(err)
	err = languages.Call(ctx, "es", func(ctx context.Context, g Greeter) error { return nil })
	fmt.Println(errors.Is(err, pluginhost.ErrNotFound))

	for _, info := range m.ExtensionPoints() {
		fmt.Println(info.Name, info.Type, len(info.Providers))
	}
	// Output:
	// en from british: Hello, Ada
	// en-gb from british: Good morning, Ada
	// fr from continental: Bonjour, Ada
	// de from continental: Hallo, Ada
	// Bonjour, Grace
	// Hallo, Linus
	// <nil>
	// true
	// greeting.language github.com/pluginhost/pluginhost_test.Greeter 4
}
