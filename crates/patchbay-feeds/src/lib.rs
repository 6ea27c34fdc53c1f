//! patchbay-feeds (in progress)
