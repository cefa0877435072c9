"""Selection and packaging: the evaluated candidate that wins becomes an immutable, documented release."""
