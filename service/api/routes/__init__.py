"""The API's routers, one module per noun; each route parses, calls a service function,
and returns."""
