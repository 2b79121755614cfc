"""Map validation: FSC, masks, cross-validated resolution."""
