// Package secure is the cryptography of Covey's client transports: the
// tickets a game backend hands its players, the stateless cookies that
// validate a UDP sender's address, the per-connection keys, and the
// authenticated encryption of TCP records and UDP packets. PROTOCOL.md,
// "Transport security", specifies every byte; the tests check its vectors.
//
// The construction is netcode.io's, on Go's crypto: the token endpoint
// (package auth) seals a ticket for the servers with XChaCha20-Poly1305
// under a key derived from the servers' secret, and gives the client the
// connection key inside it in the clear next to it, over the backend's
// HTTPS. The client presents the ticket; the server opens it, contributes
// a fresh nonce (the cookie's on UDP, the ServerHello's on TCP), and both
// derive per-direction ChaCha20-Poly1305 keys from the connection key and
// that nonce with HKDF-SHA256, so a replayed handshake yields keys no one
// holds. Nonces are packet and record counters; UDP packets carry theirs
// and pass a replay window.
//
// Everything here is pure computation on caller-owned buffers: no I/O, no
// goroutine. Sealers and Openers belong to one connection and one
// goroutine at a time; TicketKey and CookieJar are safe for concurrent use.
package secure
