// Package bot is msspbot's domain: tenants, alerts, rules, deliveries and
// commands, the interfaces the bot consumes (alert sources, notifiers,
// stores, write-back targets), and the logic in between: ingest planning,
// rule matching, outbox dispatch, write-back queue and command execution.
//
// It imports only the standard library; chat platforms, Defender and SQL
// live in adapters that depend on this package, never the other way round.
package bot
