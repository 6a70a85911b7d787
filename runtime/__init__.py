"""The connect runtime: workers, herder, stores, REST API, converters, transforms (issue 3)."""
