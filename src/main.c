/* herald entry point: placeholder until the server lands. */
#include <stdio.h>
int main(void) { puts("herald"); return 0; }
