import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;

/**
 * Starts mongo-java-server on a chosen host and port (the bundled main classes only bind 27017).
 * Usage: KiotMongoServer HOST PORT [H2_FILE]; with a file the data survives a restart.
 */
public class KiotMongoServer {
    public static void main(String[] args) {
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        MongoBackend backend = args.length > 2 ? new H2Backend(args[2]) : new MemoryBackend();
        MongoServer server = new MongoServer(backend);
        server.bind(host, port);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdown();
            backend.close();
        }));
        System.out.println("mongo-java-server listening on " + host + ":" + port + (args.length > 2 ? " file " + args[2] : " in memory"));
    }
}
