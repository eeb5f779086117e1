package handlers

import (
	"log/slog"
	"net/http"

	"github.com/msspbot/msspbot/bot"
)

// StatusByCode is the one table from bot error codes to HTTP status;
// anything else (EINTERNAL, uncoded errors) is 500.
var StatusByCode = map[string]int{
	bot.EINVALID:     http.StatusBadRequest,
	bot.ENOTFOUND:    http.StatusNotFound,
	bot.EFORBIDDEN:   http.StatusForbidden,
	bot.ECONFLICT:    http.StatusConflict,
	bot.EUNAVAILABLE: http.StatusServiceUnavailable,
}

// Status returns the HTTP status for err: 200 for nil, the table's status
// for a coded *bot.Error anywhere in the chain, else 500.
func Status(err error) int {
	if err == nil {
		return http.StatusOK
	}
	if st, ok := StatusByCode[bot.ErrorCode(err)]; ok {
		return st
	}
	return http.StatusInternalServerError
}

// Error answers err as plain text: the user-safe message of a coded error,
// a generic one otherwise. Internal errors are logged (nil logger:
// slog.Default()) with the path, never the query.
func Error(w http.ResponseWriter, r *http.Request, logger *slog.Logger, err error) {
	st := Status(err)
	if st == http.StatusInternalServerError {
		if logger == nil {
			logger = slog.Default()
		}
		logger.Error("http: internal error", "method", r.Method, "path", logPath(r), "error", err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(st)
	_, _ = w.Write([]byte(bot.ErrorMessage(err) + "\n"))
}
