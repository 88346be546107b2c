"""Server-side tools: web search and fetch, the vision fallback, video paths, stored responses."""
