// Package routerec records the routes a plugin registers on a chi router and
// turns registration mistakes into errors instead of crashes or silently lost
// handlers.
//
// chi (github.com/go-chi/chi/v5) panics when a route pattern is invalid (no
// leading slash, unclosed '{', duplicate param key, '*' not last, a bad
// regexp, an unknown method, Use after routes, Mount on an existing path…)
// and silently replaces the handler when the same method and pattern are
// registered twice. A [Recorder] wraps the router a plugin is given: it
// forwards every call to it, converts chi's panics into errors, detects
// duplicates, and remembers where (file:line of the plugin's call) each route
// was registered. The host checks [Recorder.Err] after the plugin's
// registration function returns and serves the underlying router directly,
// so the recorder costs nothing per request.
//
// # Duplicates
//
// chi stores routes in a radix tree in which a param segment is an edge keyed
// by its kind, the byte that follows its closing '}', and, for a regexp
// param, the regexp after chi has anchored it with '^' and '$'. The param
// name is not part of the key: registering GET /notes/{id} and then GET
// /notes/{noteID} replaces the first handler (and its param name). So two
// registrations are the same route when their full patterns have the same
// shape, where the shape keeps the static text and '*' and rewrites
//
//	{name}         as {}
//	{name:regexp}  as {:^regexp$} (anchors added as chi does)
//
// so /notes/{id} and /notes/{noteID} are one route, /n/{id:[0-9]+} and
// /n/{x:^[0-9]+$} are one route, while /n/{id}, /n/{id:[0-9]+}, /n/{id:\d+}
// and /n/{id}.json are four different routes (chi keeps them all; which one
// serves a request is decided by chi's matching order, not by registration
// order, so they are not reported).
//
// The method must match too, where "*" (Handle, HandleFunc, Mount, Route)
// matches every method: chi's Handle sets every method of the node, so a Get
// on the same pattern before or after it replaces one of the handlers.
//
// Patterns are compared from the root of the recorder, across sub-routers:
// GET /notes/{id} on the root and GET /{id} inside Route("/notes", …) are
// reported, because chi's tree prefers the parent's param route and the
// sub-router's handler is never reached. Mount(p, h) and Route(p, fn) are
// recorded as "*" p/* (p* when p ends in '/'), and when p does not end in
// '/' they also claim p and p/, which chi registers on the parent to reach
// the sub-router's root: a Get(p) next to a Route(p, …) is a duplicate. The
// routes registered inside a Route never conflict with that Route's own
// mount.
//
// Not detected: routes that differ in shape but match the same requests
// (/n/{id:\d+} and /n/{id:[0-9]+}), and routes registered on the underlying
// router before it was wrapped or directly on it.
package routerec
