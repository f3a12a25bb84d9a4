// Package server is a Covey node: it joins the network front ends (netio)
// to the session table (session), signs players in (auth), runs the
// built-in session commands of PROTOCOL.md, and lets a game's own Go code
// register handlers for its own ver/cmd commands next to them.
//
// A game embeds it like this:
//
//	srv, err := server.New(server.DefaultConfig())
//	srv.Handle(1, 10, func(r *server.Request) ([]byte, error) { ... })
//	err = srv.Start()
//	...
//	srv.Shutdown(ctx)
//
// Handlers run on the connection's network goroutine (a gnet event loop for
// TCP, a goroutine of its KCP socket's engine for KCP): they must not
// block. Work that waits calls Request.Defer and replies later from its
// own goroutine, within Config.DeferTimeout (30 s by default; then the
// client gets StatusInternal).
package server
