package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/writ-project/writ/access"
	"github.com/writ-project/writ/order"
	"github.com/writ-project/writ/store"
)

// RegisterAuthority registers an authority, or updates a registered one.
func (r *Registry) RegisterAuthority(ctx context.Context, a order.RegisteredAuthority, by access.Principal) (order.RegisteredAuthority, error) {
	if !by.Can(access.ManageAuthorities) {
		return a, forbidden(by, access.ManageAuthorities)
	}
	if err := order.ValidateAuthority(a); err != nil {
		return a, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old, ok := r.authorities[a.ID]; ok {
		a.Registered = old.Registered
	} else {
		a.Registered = r.clock.Now().UTC()
	}
	if err := r.store.PutAuthority(ctx, a); err != nil {
		return a, err
	}
	r.authorities[a.ID] = a
	r.log.Info("authority registered", "authority", a.ID, "kind", a.Kind, "jurisdiction", a.Jurisdiction, "deadline", a.Deadline(), "principal", by.String())
	return a, nil
}

// Authorities returns the registered authorities, by id.
func (r *Registry) Authorities() []order.RegisteredAuthority {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]order.RegisteredAuthority, 0, len(r.authorities))
	for _, a := range r.authorities {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b order.RegisteredAuthority) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Authority returns one registered authority.
func (r *Registry) Authority(id string) (order.RegisteredAuthority, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, ok := r.authorities[id]
	return a, ok
}

// CreatePrincipal creates credentials and returns the token, which is
// shown this once and stored only as a hash.
func (r *Registry) CreatePrincipal(ctx context.Context, p access.Principal, by access.Principal) (string, error) {
	if !by.Can(access.ManagePrincipals) {
		return "", forbidden(by, access.ManagePrincipals)
	}
	if err := p.Validate(); err != nil {
		return "", &order.InvalidError{Fields: []order.FieldError{{Field: "(principal)", Message: err.Error()}}}
	}
	if p.Role == access.Authority {
		if _, ok := r.Authority(p.Authority); !ok {
			return "", fmt.Errorf("authority %s is not registered: register it first: %w", p.Authority, ErrNotFound)
		}
	}
	token, hash, err := access.NewToken()
	if err != nil {
		return "", err
	}
	p.TokenHash, p.Created = hash, r.clock.Now().UTC()
	if p.Name == "" {
		p.Name = p.ID
	}
	if err := r.store.CreatePrincipal(ctx, p); err != nil {
		if errors.Is(err, store.ErrExists) {
			return "", fmt.Errorf("principal %s exists already: %w", p.ID, ErrConflict)
		}
		return "", err
	}
	r.log.Info("credentials created", "principal", p.String(), "authority", p.Authority, "by", by.String())
	return token, nil
}

// EnsurePrincipal creates a principal holding the given token unless one
// already holds it: how the operator credential in the data directory
// is kept valid across restarts.
func (r *Registry) EnsurePrincipal(ctx context.Context, p access.Principal, token string) error {
	hash := access.HashToken(token)
	if _, err := r.store.PrincipalByTokenHash(ctx, hash); err == nil {
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	p.TokenHash, p.Created = hash, r.clock.Now().UTC()
	if err := r.store.CreatePrincipal(ctx, p); err != nil {
		return fmt.Errorf("registry: bootstrap principal %s: %w", p.ID, err)
	}
	return nil
}

// Authenticate returns the principal holding token. Unknown and disabled
// credentials are refused alike.
//
// A success is remembered for AuthCacheTTL.
func (r *Registry) Authenticate(ctx context.Context, token string) (access.Principal, error) {
	hash := access.HashToken(token)
	now := r.clock.Now()
	p, gen, ok := r.auth.get(hash, now)
	if ok {
		return p, nil
	}
	p, err := r.store.PrincipalByTokenHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) || err == nil && p.Disabled {
		return access.Anonymous, fmt.Errorf("unknown or disabled credentials: %w", ErrForbidden)
	}
	if err != nil {
		return access.Anonymous, err
	}
	r.auth.put(hash, p, now, gen)
	return p, nil
}

// Principals lists every principal (without token hashes).
func (r *Registry) Principals(ctx context.Context, by access.Principal) ([]access.Principal, error) {
	if !by.Can(access.ManagePrincipals) {
		return nil, forbidden(by, access.ManagePrincipals)
	}
	return r.store.Principals(ctx)
}

// DisablePrincipal revokes credentials (or, with disabled false, restores
// them).
func (r *Registry) DisablePrincipal(ctx context.Context, id string, disabled bool, by access.Principal) error {
	if !by.Can(access.ManagePrincipals) {
		return forbidden(by, access.ManagePrincipals)
	}
	defer r.auth.forget()
	if err := r.store.SetPrincipalDisabled(ctx, id, disabled); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("principal %s: %w", id, ErrNotFound)
		}
		return err
	}
	r.log.Info("credentials changed", "principal", id, "disabled", disabled, "by", by.String())
	return nil
}
