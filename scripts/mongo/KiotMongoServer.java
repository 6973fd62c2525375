import de.bwaldvogel.mongo.MongoBackend;
import de.bwaldvogel.mongo.MongoDatabase;
import de.bwaldvogel.mongo.MongoServer;
import de.bwaldvogel.mongo.backend.Index;
import de.bwaldvogel.mongo.backend.IndexKey;
import de.bwaldvogel.mongo.backend.KeyValue;
import de.bwaldvogel.mongo.backend.h2.H2Backend;
import de.bwaldvogel.mongo.backend.h2.H2Database;
import de.bwaldvogel.mongo.backend.h2.H2UniqueIndex;
import de.bwaldvogel.mongo.backend.memory.MemoryBackend;
import de.bwaldvogel.mongo.bson.Document;
import io.netty.channel.Channel;
import org.h2.mvstore.MVMap;
import org.h2.mvstore.MVStore;
import org.h2.mvstore.type.ObjectDataType;
import java.lang.ref.ReferenceQueue;
import java.lang.ref.WeakReference;
import java.lang.reflect.Constructor;
import java.util.List;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
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
            super(openStore(fileName));
        }

        /** The backend's constructor already opens the databases in the file: the store must be known before. */
        private static MVStore store;

        private static MVStore openStore(String fileName) {
            store = new MVStore.Builder().fileName(fileName).autoCommitDisabled().open();
            return store;
        }

        @Override
        protected MongoDatabase openOrCreateDatabase(String databaseName) {
            return new FastKeyH2Database(databaseName, store, getCursorRegistry());
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

    /**
     * H2Database with its unique indexes' maps keyed by MemoKeyType. Everything else, the map names included, is
     * H2Database's own (H2Database.mapNameForIndex: `<namespace>._index_<name>`).
     */
    static final class FastKeyH2Database extends H2Database {
        private static final Constructor<H2UniqueIndex> UNIQUE_INDEX;

        static {
            try {
                UNIQUE_INDEX = H2UniqueIndex.class.getDeclaredConstructor(MVMap.class, String.class, List.class, boolean.class);
                UNIQUE_INDEX.setAccessible(true);
            } catch (NoSuchMethodException e) {
                throw new IllegalStateException("mongo-java-server's H2UniqueIndex changed", e);
            }
        }

        FastKeyH2Database(String databaseName, MVStore mvStore, de.bwaldvogel.mongo.backend.CursorRegistry cursors) {
            super(databaseName, mvStore, cursors);
        }

        @Override
        protected Index<Object> openOrCreateUniqueIndex(String collectionName, String indexName, List<IndexKey> keys, boolean sparse) {
            String mapName = getFullCollectionNamespace(collectionName) + "._index_" + indexName;
            MVMap<KeyValue, Object> map = DurableH2Backend.store.openMap(mapName, new MVMap.Builder<KeyValue, Object>().keyType(new MemoKeyType()));
            try {
                return UNIQUE_INDEX.newInstance(map, indexName, keys, sparse);
            } catch (ReflectiveOperationException e) {
                throw new IllegalStateException(e);
            }
        }
    }

    /**
     * H2's ObjectDataType, comparing index keys in the same order for less: a KeyValue (mongo-java-server's index
     * key) is not Comparable, so ObjectDataType serializes both keys with Java serialization at every comparison of
     * a B-tree search and compares the bytes. That was ~60 % of the server's CPU in a bulk insert or a bulk update
     * by _id (JFR, 1,000 documents per command). Here each key object is serialized once, its bytes kept as long as
     * the object lives (weakly, by identity), and compared as ObjectDataType compares them: the same order, so a
     * file written before keeps working, and the stored format is ObjectDataType's unchanged. A KeyValue never
     * changes once made (a final list of the indexed values, computed per write), so its bytes never go stale.
     */
    static final class MemoKeyType extends ObjectDataType {
        private static final ReferenceQueue<Object> COLLECTED = new ReferenceQueue<>();
        private static final ConcurrentHashMap<Object, byte[]> BYTES = new ConcurrentHashMap<>();

        @Override
        public int compare(Object a, Object b) {
            if (!(a instanceof KeyValue) || !(b instanceof KeyValue)) return super.compare(a, b);
            if (a == b) return 0;
            return compareNotNull(bytesOf(a), bytesOf(b));
        }

        private static byte[] bytesOf(Object key) {
            byte[] bytes = BYTES.get(new Lookup(key));
            if (bytes != null) return bytes;
            bytes = serialize(key);
            for (Object gone; (gone = COLLECTED.poll()) != null; ) BYTES.remove(gone);
            BYTES.put(new Held(key), bytes);
            return bytes;
        }

        /** A cache entry's key: weak, equal by the identity of what it refers to. */
        private static final class Held extends WeakReference<Object> {
            private final int hash;

            Held(Object key) {
                super(key, COLLECTED);
                hash = System.identityHashCode(key);
            }

            @Override
            public int hashCode() {
                return hash;
            }

            @Override
            public boolean equals(Object other) {
                if (other == this) return true;
                Object key = get();
                return key != null && other instanceof Held held && held.get() == key;
            }
        }

        /** What a look-up asks with (ConcurrentHashMap calls the asked key's equals). */
        private record Lookup(Object key) {
            @Override
            public int hashCode() {
                return System.identityHashCode(key);
            }

            @Override
            public boolean equals(Object other) {
                return other instanceof Held held && held.get() == key;
            }
        }
    }
}
