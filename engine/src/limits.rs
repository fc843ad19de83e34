//! Every engine limit, in one place, with `_max` names.
