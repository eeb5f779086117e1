// Package discord implements msspbot's Discord adapter: the /mssp
// application command and its registration, a bot.Notifier that posts
// alert cards as embeds with buttons, and the two ways interactions
// arrive — the gateway (Runner) and signed HTTP requests
// (InteractionsHandler) — both feeding one executor through
// Interactions.HandleInteraction.
package discord
