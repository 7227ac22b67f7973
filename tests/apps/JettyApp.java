// A plain servlet app on Jetty 9 (Debian's libjetty9-java, embedded) for the differential
// suite: which handler does a real servlet container run?
//
//   java -cp <jetty9 and servlet-api jars> JettyApp.java   (see tests/common/apps.rs)
//
// Servlets mapped as web.xml would map them: "/signup" (exact), "/checkout/*" (the
// path and everything under it) and "/" (the default servlet). Binds 127.0.0.1 on an
// ephemeral port, prints `LISTENING <port>` once it accepts connections, and exits when its
// stdin closes. Answers `X-Handler`, `X-Identity` and a JSON body with what the container saw:
// handler, method, path (servlet path + path info), raw target (request URI), host
// (getServerName), and `read`: the identity, forwarding and override headers through
// getHeader, and getRemoteUser, getContextPath, getPathInfo, getRemoteAddr.
import java.io.IOException;
import java.util.Collections;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import javax.servlet.http.HttpServlet;
import javax.servlet.http.HttpServletRequest;
import javax.servlet.http.HttpServletResponse;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;

public class JettyApp {
    static final String[] PROTECTED = {
        "x-verified-unique-in-site", "x-verified-birth", "x-verified-gender", "x-verified-age-ok",
        "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-prefix",
        "x-forwarded-port", "x-real-ip", "forwarded", "x-host", "x-original-host",
        "x-http-method-override", "x-http-method", "x-method-override", "x-original-url",
        "x-rewrite-url",
    };

    static String json(String s) {
        if (s == null) return "null";
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20 || c > 0x7e) b.append(String.format("\\u%04x", (int) c));
            else b.append(c);
        }
        return b.append('"').toString();
    }

    static class Handler extends HttpServlet {
        final String name;

        Handler(String name) {
            this.name = name;
        }

        @Override
        protected void service(HttpServletRequest req, HttpServletResponse resp) throws IOException {
            req.getInputStream().readAllBytes();
            resp.setHeader("X-Handler", name);
            TreeSet<String> seen = new TreeSet<>();
            for (String h : Collections.list(req.getHeaderNames())) {
                String l = h.toLowerCase();
                if (l.startsWith("x-verified-")) seen.add(l);
            }
            resp.setHeader("X-Identity", seen.isEmpty() ? "-" : String.join(",", seen));
            String status = req.getParameter("status");
            if (status != null && status.matches("30[12378]")) {
                resp.setStatus(Integer.parseInt(status));
                resp.setHeader("Location", "/done");
                return;
            }
            Map<String, String> read = new TreeMap<>();
            for (String n : PROTECTED) {
                String v = req.getHeader(n);
                if (v != null) read.put(n, v);
            }
            if (req.getRemoteUser() != null) read.put("servlet:remoteUser", req.getRemoteUser());
            if (!req.getContextPath().isEmpty()) read.put("servlet:contextPath", req.getContextPath());
            if (req.getPathInfo() != null) read.put("servlet:pathInfo", req.getPathInfo());
            read.put("servlet:remoteAddr", req.getRemoteAddr());
            read.put("servlet:scheme", req.getScheme());
            StringBuilder r = new StringBuilder("{");
            for (Map.Entry<String, String> e : read.entrySet()) {
                if (r.length() > 1) r.append(',');
                r.append(json(e.getKey())).append(':').append(json(e.getValue()));
            }
            r.append('}');
            String path = req.getServletPath() + (req.getPathInfo() == null ? "" : req.getPathInfo());
            String body = "{\"handler\":" + json(name)
                + ",\"method\":" + json(req.getMethod())
                + ",\"path\":" + json(path)
                + ",\"raw\":" + json(req.getRequestURI() + (req.getQueryString() == null ? "" : "?" + req.getQueryString()))
                + ",\"host\":" + json(req.getServerName())
                + ",\"read\":" + r + "}";
            resp.setStatus(200);
            resp.setContentType("application/json");
            resp.getOutputStream().write(body.getBytes("UTF-8"));
        }
    }

    public static void main(String[] args) throws Exception {
        Server server = new Server();
        ServerConnector connector = new ServerConnector(server);
        connector.setHost("127.0.0.1");
        connector.setPort(0);
        server.addConnector(connector);
        ServletContextHandler ctx = new ServletContextHandler();
        ctx.setContextPath("/");
        ctx.addServlet(new ServletHolder(new Handler("signup")), "/signup");
        ctx.addServlet(new ServletHolder(new Handler("checkout")), "/checkout/*");
        ctx.addServlet(new ServletHolder(new Handler("catchall")), "/");
        server.setHandler(ctx);
        server.start();
        Thread watch = new Thread(() -> {
            try {
                System.in.readAllBytes();
            } catch (IOException e) {
                // stdin gone: exit as on EOF
            }
            Runtime.getRuntime().halt(0);
        });
        watch.setDaemon(true);
        watch.start();
        System.out.println("LISTENING " + connector.getLocalPort());
        System.out.flush();
        server.join();
    }
}
