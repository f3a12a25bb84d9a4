package session

import (
	"github.com/google/uuid"
)

// MaxNodeNameLen is the longest node name a session ID may carry.
const MaxNodeNameLen = 64

const uuidLen = 36 // canonical UUID text: 8-4-4-4-12 hex digits

// NewID returns a fresh session ID owned by node: a random (version 4) UUID
// in canonical text, '@', and the node name, e.g.
// "0b5a7c4e-3f0e-4c1a-9d52-0f6c2b7a1e90@node-a". Any node can read the owner
// from an ID with [IDNode] and route an operation there.
func NewID(node string) (string, error) {
	if !ValidNodeName(node) {
		return "", ErrInvalidSessionID
	}
	u, err := uuid.NewRandom()
	if err != nil {
		return "", err
	}
	return u.String() + "@" + node, nil
}

// IDNode returns the node named by a session ID, or ErrInvalidSessionID when
// id is not of the form [NewID] produces. It does not allocate.
func IDNode(id string) (string, error) {
	if len(id) < uuidLen+2 || id[uuidLen] != '@' || !validUUIDv4(id[:uuidLen]) {
		return "", ErrInvalidSessionID
	}
	node := id[uuidLen+1:]
	if !ValidNodeName(node) {
		return "", ErrInvalidSessionID
	}
	return node, nil
}

func validUUIDv4(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
			continue
		}
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	// Version 4, RFC 4122 variant.
	return s[14] == '4' && (s[19] == '8' || s[19] == '9' || s[19] == 'a' || s[19] == 'b')
}

// ValidNodeName reports whether name can be a node name: 1..MaxNodeNameLen
// characters of [A-Za-z0-9._-].
func ValidNodeName(name string) bool {
	if len(name) == 0 || len(name) > MaxNodeNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// idOwnedBy reports whether session ID id names node.
func idOwnedBy(id, node string) bool {
	return len(id) == uuidLen+1+len(node) && id[uuidLen] == '@' && id[uuidLen+1:] == node
}
