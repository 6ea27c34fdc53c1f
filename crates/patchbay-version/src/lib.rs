//! patchbay-version (in progress)
