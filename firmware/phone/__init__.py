# Secure SRST phone agent: one module per concern (docs/development.md, "The firmware modules").
