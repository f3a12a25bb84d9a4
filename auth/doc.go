// Package auth issues and verifies Covey's sign-in tokens: short-lived,
// HMAC-SHA256-signed statements "this user ID, until this time" that a game
// backend obtains from the server's HTTP API with its API key and hands to
// its player's client, which presents it as the first frame on TCP or KCP.
//
// A token is "v1.<base64url user ID>.<expiry, unix seconds>.<base64url
// HMAC-SHA256 over everything before the last dot>" (see PROTOCOL.md).
package auth
