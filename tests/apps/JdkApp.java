// The JDK's own HTTP server (com.sun.net.httpserver) for the differential suite: which
// handler does a real app run?
//
//   java tests/apps/JdkApp.java   (the single-file source launcher; Java 11+)
//
// Binds 127.0.0.1 on an ephemeral port, prints `LISTENING <port>` once it accepts
// connections, and exits when its stdin closes. Contexts are created natively:
// "/signup", "/checkout" and "/" (the JDK picks the longest context that prefixes the
// path). Every response is 200 with an `X-Handler` header and a JSON body telling what the
// server saw.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

public class JdkApp {
    /** The identity, forwarding and override headers whose values the app reads (`read`). */
    static final String[] PROTECTED = {
        "x-verified-unique-in-site", "x-verified-birth", "x-verified-gender", "x-verified-age-ok",
        "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-prefix",
        "x-forwarded-port", "x-real-ip", "forwarded", "x-host", "x-original-host",
        "x-http-method-override", "x-http-method", "x-method-override", "x-original-url",
        "x-rewrite-url",
    };

    public static void main(String[] args) throws IOException {
        Thread stdinWatch = new Thread(() -> {
            try {
                InputStream in = System.in;
                byte[] buf = new byte[256];
                while (in.read(buf) != -1) {
                    // keep reading until the parent closes our stdin
                }
            } catch (IOException e) {
                // stdin gone: same as EOF
            }
            System.exit(0);
        }, "stdin-watch");
        stdinWatch.setDaemon(true);
        stdinWatch.start();

        HttpServer server =
                HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/signup", new Named("signup"));
        server.createContext("/checkout", new Named("checkout"));
        server.createContext("/", new Named("catchall"));
        ExecutorService pool = Executors.newFixedThreadPool(16, r -> {
            Thread t = new Thread(r, "jdkapp-worker");
            t.setDaemon(true);
            return t;
        });
        server.setExecutor(pool);
        server.start();
        System.out.println("LISTENING " + server.getAddress().getPort());
        System.out.flush();
    }

    static final class Named implements HttpHandler {
        private final String name;

        Named(String name) {
            this.name = name;
        }

        @Override
        public void handle(HttpExchange ex) throws IOException {
            try (InputStream body = ex.getRequestBody()) {
                body.readAllBytes(); // read the body fully so keep-alive works
            }
            URI uri = ex.getRequestURI();
            String raw = uri.getRawPath();
            if (raw == null) {
                // an opaque URI (e.g. "x:/signup") has no path: report the whole target
                raw = uri.toString();
            } else if (uri.getRawQuery() != null) {
                raw = raw + "?" + uri.getRawQuery();
            }
            String query = uri.getRawQuery() == null ? "" : uri.getRawQuery();
            java.util.regex.Matcher st = java.util.regex.Pattern.compile("(?:^|&)status=(30[12378])(?:&|$)").matcher(query);
            if (st.find()) {
                ex.getResponseHeaders().set("X-Handler", name);
                ex.getResponseHeaders().set("Location", "/done");
                ex.sendResponseHeaders(Integer.parseInt(st.group(1)), -1);
                ex.close();
                return;
            }
            StringBuilder read = new StringBuilder("{");
            for (String n : PROTECTED) {
                java.util.List<String> v = ex.getRequestHeaders().get(n);
                if (v != null) {
                    if (read.length() > 1) read.append(", ");
                    read.append(str(n)).append(": ").append(str(String.join(", ", v)));
                }
            }
            read.append("}");
            String json = "{\"handler\": " + str(name)
                    + ", \"method\": " + str(ex.getRequestMethod())
                    + ", \"path\": " + str(uri.getPath())
                    + ", \"raw\": " + str(raw)
                    + ", \"host\": " + str(ex.getRequestHeaders().getFirst("Host"))
                    + ", \"read\": " + read
                    + ", \"verified\": " + str(ex.getRequestHeaders().getFirst("x-verified-unique-in-site"))
                    + ", \"age_ok\": " + str(ex.getRequestHeaders().getFirst("x-verified-age-ok"))
                    + "}";
            byte[] out = json.getBytes(StandardCharsets.UTF_8);
            ex.getResponseHeaders().set("X-Handler", name);
            // The names of the identity headers that reached the app, sorted.
            java.util.TreeSet<String> seen = new java.util.TreeSet<>();
            for (String k : ex.getRequestHeaders().keySet()) {
                if (k.toLowerCase(java.util.Locale.ROOT).startsWith("x-verified-")) {
                    seen.add(k.toLowerCase(java.util.Locale.ROOT));
                }
            }
            ex.getResponseHeaders().set("X-Identity", seen.isEmpty() ? "-" : String.join(",", seen));
            ex.getResponseHeaders().set("Content-Type", "application/json");
            if (ex.getRequestMethod().equalsIgnoreCase("HEAD")) {
                ex.sendResponseHeaders(200, -1);
                ex.close();
                return;
            }
            ex.sendResponseHeaders(200, out.length);
            try (OutputStream os = ex.getResponseBody()) {
                os.write(out);
            }
        }
    }

    /** A JSON string literal, or null. */
    static String str(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder(s.length() + 2).append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
            }
        }
        return b.append('"').toString();
    }
}
