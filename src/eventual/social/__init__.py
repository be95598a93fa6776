"""A social network on the Redis face (``docs/social.md``): ``app.py`` is the app,
``demo.py`` the story ``eventual demo social`` tells."""
