"""One module per paper (and `article` for the article-level experiments), each registering its
runs and claims; a new module here (or in a plugin) is a new set of claims."""
