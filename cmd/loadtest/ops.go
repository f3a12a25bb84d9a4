package main

import (
	"context"
	"fmt"

	"github.com/coveyhq/covey/wire"
)

// Session requests, each one round trip on c with the given context. Errors
// are those of conn.call: a wire.Status for a refusal, errClosed, a
// context error, or errBadReply.

// emptyTTLSeconds is how long the driver's sessions survive empty: the
// server's minimum.
const emptyTTLSeconds = 30

// opCreate creates a session of sessionType for up to maxMembers with the
// given properties and returns its ID. The session is Quiet: the driver's
// clients would only discard PropertiesChanged pushes, and the properties
// scenario measures the property commands as it did before they existed.
func opCreate(ctx context.Context, c *conn, maxMembers int, props []wire.KeyValue) (string, error) {
	req := wire.CreateRequest{Type: sessionType, MaxMembers: uint16(maxMembers), TTLSeconds: emptyTTLSeconds, Flags: wire.CreateQuiet, Props: props}
	p, err := c.call(ctx, wire.CmdCreate, req.Append(nil))
	if err != nil {
		return "", err
	}
	var rep wire.CreateReply
	if err := rep.Consume(p); err != nil {
		return "", fmt.Errorf("%w: Create: %w", errBadReply, err)
	}
	return rep.SessionID, nil
}

// opJoin joins session id.
func opJoin(ctx context.Context, c *conn, id string) error {
	req := wire.SessionRef{Type: sessionType, SessionID: id}
	_, err := c.call(ctx, wire.CmdJoin, req.Append(nil))
	return err
}

// opLeave leaves session id.
func opLeave(ctx context.Context, c *conn, id string) error {
	req := wire.SessionRef{Type: sessionType, SessionID: id}
	_, err := c.call(ctx, wire.CmdLeave, req.Append(nil))
	return err
}

// opKick kicks userID out of the caller's session; the caller must own it.
func opKick(ctx context.Context, c *conn, userID string) error {
	req := wire.KickRequest{Type: sessionType, UserID: userID}
	_, err := c.call(ctx, wire.CmdKick, req.Append(nil))
	return err
}

// opGetInt reads the signed-integer property key of the caller's session.
func opGetInt(ctx context.Context, c *conn, key string) (int64, error) {
	req := wire.PropertyKeyRequest{Type: sessionType, Key: key}
	p, err := c.call(ctx, wire.CmdGetProperty, req.Append(nil))
	if err != nil {
		return 0, err
	}
	var rep wire.PropertyReply
	if err := rep.Consume(p); err != nil {
		return 0, fmt.Errorf("%w: GetProperty: %w", errBadReply, err)
	}
	if !rep.Exists || rep.Value.Kind != wire.KindInt {
		return 0, fmt.Errorf("%w: property %q is not an int", errBadReply, key)
	}
	return rep.Value.Int(), nil
}

// opCompareAndSetInt sets the property key of the caller's session to
// newValue if it holds oldValue; otherwise the error is
// wire.StatusCompareFailed.
func opCompareAndSetInt(ctx context.Context, c *conn, key string, oldValue, newValue int64) error {
	req := wire.CompareAndSetRequest{
		Type: sessionType, Key: key, HasOld: true,
		Old: wire.IntValue(oldValue), New: wire.IntValue(newValue),
	}
	_, err := c.call(ctx, wire.CmdCompareAndSetProperty, req.Append(nil))
	return err
}
