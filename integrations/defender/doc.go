// Package defender connects msspbot to Microsoft Defender: per-tenant
// app-only tokens from Entra ID through MSAL (one confidential client for
// every customer tenant), the Defender for Endpoint alert API as a
// bot.AlertSource and bot.WriteBackTarget, and the per-cloud host table.
//
// Everything here speaks the providers' wire formats; the bot only sees
// bot.Alert values and errors wrapping bot.ErrAuth. Secrets and tokens
// never appear in errors or logs.
package defender
