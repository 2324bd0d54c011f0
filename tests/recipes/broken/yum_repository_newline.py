# error: {path}:4: yum_repository[tools]: description 'Tools\n[evil]\nbaseurl=http://evil.example/' contains a line break; it must be one line
from converge import yum_repository

yum_repository("tools", "https://rpm.example.com/el9/", description="Tools\n[evil]\nbaseurl=http://evil.example/")
