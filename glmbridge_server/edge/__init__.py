"""The HTTP edge: the app factory, security middleware, inbound limits and the routes.

The only wing that imports Starlette (besides the simulator's app module).
"""
