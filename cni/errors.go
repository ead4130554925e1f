package cni

import (
	"errors"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/vmlink/vmlink/link"
)

// The spec leaves codes from 100 on to plugins.
const (
	// ErrCheckConfig is CHECK finding the attachment differs from its
	// configuration or its result (link, addresses, routes).
	ErrCheckConfig uint = 100
	// ErrCheckWire is CHECK finding the attachment misbehaves on the wire.
	ErrCheckWire uint = 101
)

// asCNIError gives err the CNI code that fits: a refused configuration is
// 7, an incompatible version 1, an error that already is one keeps its
// code, anything else is 999 (internal) with err as the message.
func asCNIError(err error) *types.Error {
	if err == nil {
		return nil
	}
	var te *types.Error
	if errors.As(err, &te) {
		return te
	}
	var fe *link.FieldError
	if errors.As(err, &fe) {
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	}
	var ie *version.ErrorIncompatible
	if errors.As(err, &ie) {
		return types.NewError(types.ErrIncompatibleCNIVersion, "incompatible CNI versions", ie.Details())
	}
	return types.NewError(types.ErrInternal, err.Error(), "")
}
