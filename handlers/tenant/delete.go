package tenant

import (
	"net/http"

	"pommy.ai/edge/handlers/web"
	"pommy.ai/edge/storage"
)

// Delete removes the tenant's rows and destroys its data key first, so
// that whatever a failure leaves behind (blobs, backups) is unreadable.
// Every capability's rows go in one batch (New's purge), the tenants row
// last.
func (svc *Service) Delete(w http.ResponseWriter, r *http.Request, s *web.Scope) error {
	ctx := r.Context()
	if err := s.Record(r, "tenant.deleted", "tenant:"+s.Tenant, nil); err != nil {
		return err
	}
	if err := s.Keys.Shred(ctx, s.Tenant); err != nil {
		return err
	}
	var stmts []storage.Stmt
	for _, purge := range svc.purge {
		stmts = append(stmts, purge(s.Tenant)...)
	}
	stmts = append(stmts, storage.Stmt{
		// tenant-lookup: the tenants row is keyed by id, which is the scope's tenant.
		Query: `DELETE FROM tenants WHERE id = ?`, Args: []any{s.Tenant}})
	if _, err := svc.p.SQL.Batch(ctx, stmts); err != nil {
		return err
	}
	svc.endSession(w)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
