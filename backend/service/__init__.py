"""The HTTP service Label Studio calls: routes, auth, webhooks, the dashboard.

Thin: each route validates its input and calls one function of the core.
"""
