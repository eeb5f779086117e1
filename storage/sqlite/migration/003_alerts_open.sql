-- Open alerts newest first, for a SOC channel's `alerts` over every
-- tenant: reading this index backwards stops after a page, where the
-- per-tenant alerts_list index has to read every open alert and sort.
-- Covering (tenant, severity, status) so non-matching rows cost no
-- table lookup.
CREATE INDEX alerts_open ON alerts (created_at, tenant_id, severity, status)
	WHERE status IN ('New', 'InProgress');
