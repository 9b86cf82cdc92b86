package routerec

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestShapeOf(t *testing.T) {
	t.Parallel()

	for pattern, want := range map[string]string{
		"/":                        "/",
		"/notes":                   "/notes",
		"/notes/{id}":              "/notes/{}",
		"/notes/{noteID}/tags/{t}": "/notes/{}/tags/{}",
		"/n/{id:[0-9]+}":           "/n/{:^[0-9]+$}",
		"/n/{x:^[0-9]+$}":          "/n/{:^[0-9]+$}",
		"/n/{x:^[0-9]+}":           "/n/{:^[0-9]+$}",
		"/n/{id:}":                 "/n/{:}",
		"/n/{id:[0-9]{3}}/x":       "/n/{:^[0-9]{3}$}/x",
		"/n/{id}.json":             "/n/{}.json",
		"/{a}-{b}":                 "/{}-{}",
		"/files/*":                 "/files/*",
		"/u/{id}/*":                "/u/{}/*",
		"/n/{id:[a-z]*}/x":         "/n/{:^[a-z]*$}/x",
		"/unclosed/{id":            "/unclosed/{id", // rejected by chi
		"/wild/*/{id}":             "/wild/*/{id}",  // rejected by chi
	} {
		require.Equal(t, want, shapeOf(pattern), pattern)
	}
}
