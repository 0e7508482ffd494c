/* Exits with the code given as argv[1] (after writing a line). */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    printf("exiting\n");
    fflush(stdout);
    exit(argc > 1 ? atoi(argv[1]) : 0);
}
