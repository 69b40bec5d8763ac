//! Demo service.
