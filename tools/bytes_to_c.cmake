# cmake -DIN=FILE -DOUT=FILE.inc -P bytes_to_c.cmake: FILE's bytes as the
# body of a C char array initializer ("0x23,0x21,..."), for a file a
# program carries inside itself (the scorer's python worker driver).
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" body "${body}")
file(WRITE ${OUT} "${body}\n")
