# error: {path}:4: hostname[web_1]: hostname 'web_1' is not a valid host name (labels of letters, digits and '-', separated by dots, at most 64 characters)
from converge import hostname

hostname("web_1")
