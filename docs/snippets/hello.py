from converge import file

file("file.txt", content="Hello Tunnelix")
