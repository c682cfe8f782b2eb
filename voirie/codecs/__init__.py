"""Format codecs below the store: encoders both the store and the publishers use."""
