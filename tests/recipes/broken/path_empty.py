# error: {path}:4: directory[]: path must be a non-empty string, not ''
from converge import directory

directory("")
