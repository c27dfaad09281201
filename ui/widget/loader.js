// placeholder: the loader
