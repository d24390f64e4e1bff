//! Wheel file names: `{name}-{version}(-{build})?-{python}-{abi}-{platform}.whl`.
//! (Stub: to be implemented.)
