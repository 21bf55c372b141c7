"""The domain: record kinds, their fields, the events that change them, instants. Pure data, no I/O."""
