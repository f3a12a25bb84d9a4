// Package auth issues and verifies Covey's sign-in tokens: short-lived,
// HMAC-SHA256-signed statements "this user ID, until this time" that a game
// backend obtains from the server's HTTP API with its API key and hands to
// its player's client, which presents it as the first frame on TCP or KCP.
//
// A token is "v1.<base64url user ID>.<expiry, unix seconds>.<base64url
// HMAC-SHA256 over everything before the last dot>", or for single-use
// tokens "v2.<user ID>.<expiry>.<base64url 16-byte random nonce>.<HMAC>"
// (see PROTOCOL.md, Tokens). Each has one spelling: Verify refuses any
// other, even one that decodes to the same bytes.
//
// By default a token signs in any number of times until it expires. A
// Signer made with SignerConfig.SingleUse lets each sign in once: its
// ReplayGuard remembers the tokens accepted until they expire, in a
// bounded, sharded set of one process's memory.
package auth
