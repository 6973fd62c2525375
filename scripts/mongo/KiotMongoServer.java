import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.bson.Document;
import io.netty.channel.Channel;
import org.h2.mvstore.MVStore;
import java.util.Set;
import java.util.concurrent.locks.ReentrantReadWriteLock;

/**
 * Starts mongo-java-server on a chosen host and port (the bundled main classes only bind 27017).
 * Usage: KiotMongoServer HOST PORT [H2_FILE]; with a file the data survives a restart, and a crash.
 */
public class KiotMongoServer {
    public static void main(String[] args) {
        String host = args[0];
        int port = Integer.parseInt(args[1]);
        MongoBackend backend = args.length > 2 ? new DurableH2Backend(args[2]) : new MemoryBackend();
        MongoServer server = new MongoServer(backend);
        server.bind(host, port);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            server.shutdown();
            backend.close();
        }));
        System.out.println("mongo-java-server listening on " + host + ":" + port + (args.length > 2 ? " file " + args[2] : " in memory"));
    }

    /**
     * The H2 backend, answering a write only once it is on disk: H2's MVStore keeps changes in memory
     * and writes them in the background about once a second (its auto-commit delay), so without this a
     * kill -9 loses the writes of the last second that MongoDB clients were told had succeeded. Like
     * MongoDB's journal with {j: true}: after a command that may have written, the thread waits until a
     * commit and an fsync that started after its write have finished. One thread commits for every
     * waiter at once (a group commit), so concurrent writers share one fsync.
     *
     * A commit stores whole commands only. mongo-java-server changes a collection's maps one after another
     * (an insert puts the document into the data map, then its key into each index map), and an MVStore
     * commit stores each map as it is at that moment, so a commit running beside a write could store a
     * document without its `_id` index entry. After a kill -9 that half is what the file holds: the document
     * is found, but inserting it again fails with a generic "already existed" error instead of E11000, and
     * a client that retries (telemetry-ingest's batch insert) fails for good. So write commands share a lock
     * that a commit takes alone: it waits for the commands under way to end and holds new ones back only while
     * the changes are written (the fsync runs outside it).
     */
    static final class DurableH2Backend extends H2Backend {
        /** Commands that never write: they answer at once. Anything else waits for the disk. */
        private static final Set<String> READS = Set.of(
            "find", "getmore", "count", "distinct", "listcollections", "listindexes", "listdatabases", "hello",
            "ismaster", "ping", "buildinfo", "getlasterror", "killcursors", "endsessions", "serverstatus", "dbstats",
            "collstats", "connectionstatus", "getparameter", "whatsmyuri", "getcmdlineopts", "hostinfo",
            "getfreemonitoringstatus", "getlog", "saslstart", "saslcontinue", "explain");

        /** Tickets: one per command that may have written, in order; `durable` is the last one on disk. */
        private long requested = 0;
        private long durable = 0;
        private boolean committing = false;
        /** Shared by write commands while they run; taken alone by a commit (see above). */
        private final ReentrantReadWriteLock commandsVersusCommit = new ReentrantReadWriteLock();

        DurableH2Backend(String fileName) {
            // No background writer: this class decides when changes are stored, and stores them before answering.
            super(new MVStore.Builder().fileName(fileName).autoCommitDisabled().open());
        }

        @Override
        public Document handleCommand(Channel channel, String databaseName, String command, Document query) {
            if (READS.contains(command.toLowerCase())) return super.handleCommand(channel, databaseName, command, query);
            commandsVersusCommit.readLock().lock();
            try {
                return super.handleCommand(channel, databaseName, command, query);
            } finally {
                commandsVersusCommit.readLock().unlock();
                // Also after a failed command: an ordered insert may have written some documents first.
                awaitDurable();
            }
        }

        private void awaitDurable() {
            // The write is done, so a commit that begins after this ticket was taken stores it.
            long ticket;
            synchronized (this) {
                ticket = ++requested;
            }
            while (true) {
                long upTo;
                synchronized (this) {
                    while (committing && durable < ticket) waitUninterruptibly();
                    if (durable >= ticket) return;
                    committing = true;
                    upTo = requested;
                }
                boolean done = false;
                try {
                    commandsVersusCommit.writeLock().lock();
                    try {
                        getMvStore().commit();
                    } finally {
                        commandsVersusCommit.writeLock().unlock();
                    }
                    getMvStore().sync();
                    done = true;
                } finally {
                    synchronized (this) {
                        committing = false;
                        if (done) durable = Math.max(durable, upTo);
                        notifyAll();
                    }
                }
            }
        }

        private void waitUninterruptibly() {
            try {
                wait();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
    }
}
