// Command server is the app the local region's tests deploy: it answers
// every request with $RESPONSE, its dyno name and its pid, so a test can
// tell which release and which process answered.
package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
)

func main() {
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s pid=%d\n", os.Getenv("RESPONSE"), os.Getenv("DYNO"), os.Getpid())
		// A request line on stdout, as a web server's access log.
		fmt.Println("request", r.URL.Path)
	})
	addr := net.JoinHostPort("127.0.0.1", os.Getenv("PORT"))
	fmt.Println("listening on", addr)
	log.Fatal(http.ListenAndServe(addr, nil))
}
