package flumefast;

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.Map;

import org.apache.avro.file.DataFileStream;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.LocatedFileStatus;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RemoteIterator;
import org.apache.hadoop.hdfs.DistributedFileSystem;
import org.apache.hadoop.hdfs.HdfsConfiguration;
import org.apache.hadoop.hdfs.MiniDFSCluster;
import org.apache.hadoop.hdfs.client.HdfsDataInputStream;
import org.apache.hadoop.io.BytesWritable;
import org.apache.hadoop.io.LongWritable;
import org.apache.hadoop.io.SequenceFile;
import org.apache.hadoop.io.Text;
import org.apache.hadoop.io.Writable;
import org.apache.hadoop.io.compress.CompressionCodec;
import org.apache.hadoop.io.compress.CompressionCodecFactory;
import org.apache.hadoop.util.ReflectionUtils;

/**
 * The HDFS peer of flume-fast's HDFS sink tests: a MiniDFSCluster, and Hadoop's own readers
 * for what the sink wrote, in one JVM driven by line commands on stdin (answers on stdout,
 * each ending in END or ERR):
 *
 * <pre>
 *   LIST dir            FILE path length closed  (recursive, every file)
 *   COUNT dir           COUNT lines files  (newline bytes in every file under dir, recursive,
 *                       open ones up to their visible length; each file is read from where the
 *                       last COUNT of that path stopped, so polling a growing file is cheap;
 *                       a file renamed between listing and reading counts 0 this time)
 *   REPLICATION path    REPLICATION n  (the namenode's default replication, for files under path)
 *   DELETE dir          DELETED  (removes dir and everything under it, and forgets their counts)
 *   SEQ path            META keyClass valueClass compressed blockCompressed codec, REC key base64(value)
 *   TEXT path           LINE base64(line)  (decompressed by extension, as `hadoop fs -text`)
 *   AVRO path           REC base64(k=v&k=v) base64(body)  (decompressed by extension first)
 *   STOPNN / STARTNN    stop / restart the namenode, keeping its data
 *   QUIT (or EOF)       shut down
 * </pre>
 *
 * Arguments: base directory, namenode port (0: any). Prints "READY hdfs://127.0.0.1:port".
 * Given an hdfs:// URL instead of a port, it starts no cluster and only reads that HDFS
 * (then prints "READY url"; STOPNN and STARTNN fail).
 */
public class HdfsPeer {
    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), true, "UTF-8");
        // Hadoop logs to System.out; only the protocol goes to the real stdout.
        System.setOut(System.err);
        File base = new File(args[0]);
        MiniDFSCluster cluster = null;
        String url;
        if (args[1].startsWith("hdfs://")) {
            url = args[1];
        } else {
            int port = Integer.parseInt(args[1]);
            Configuration conf = new HdfsConfiguration();
            conf.set("dfs.replication", "1");
            conf.set("dfs.blocksize", "16777216");
            // Recovery of an abandoned file should not wait for the default lease limits.
            conf.set("dfs.namenode.lease-recheck-interval-ms", "1000");
            cluster = new MiniDFSCluster.Builder(conf, base)
                    .nameNodePort(port)
                    .numDataNodes(1)
                    .build();
            cluster.waitActive();
            url = "hdfs://127.0.0.1:" + cluster.getNameNodePort();
        }
        out.println("READY " + url);

        Configuration client = new Configuration();
        client.set("fs.defaultFS", url);
        client.setBoolean("fs.hdfs.impl.disable.cache", true);

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String[] cmd = line.trim().split(" ", 2);
            if (cmd[0].isEmpty()) {
                continue;
            }
            if (cmd[0].equals("QUIT")) {
                break;
            }
            try {
                if (cluster == null && (cmd[0].equals("STOPNN") || cmd[0].equals("STARTNN"))) {
                    throw new IllegalStateException("no MiniDFSCluster: reading " + url);
                }
                switch (cmd[0]) {
                    case "STOPNN":
                        cluster.shutdownNameNode(0);
                        break;
                    case "STARTNN":
                        cluster.restartNameNode(0, true);
                        cluster.waitActive();
                        break;
                    default:
                        try (FileSystem fs = FileSystem.get(client)) {
                            run(fs, client, cmd[0], cmd.length > 1 ? cmd[1] : "", out);
                        }
                }
                out.println("END");
            } catch (Throwable t) {
                out.println("ERR " + t.toString().replace('\n', ' '));
            }
        }
        if (cluster != null) {
            cluster.shutdown();
        }
        System.exit(0);
    }

    static String b64(byte[] b) {
        return Base64.getEncoder().encodeToString(b);
    }

    static void run(FileSystem fs, Configuration conf, String cmd, String arg, PrintStream out) throws Exception {
        Path path = new Path(arg);
        switch (cmd) {
            case "LIST": {
                if (!fs.exists(path)) {
                    return;
                }
                RemoteIterator<LocatedFileStatus> it = fs.listFiles(path, true);
                while (it.hasNext()) {
                    LocatedFileStatus s = it.next();
                    boolean closed = ((DistributedFileSystem) fs).isFileClosed(s.getPath());
                    out.println("FILE " + s.getPath().toUri().getPath() + " " + s.getLen() + " " + closed);
                }
                return;
            }
            case "COUNT": {
                long lines = 0;
                long files = 0;
                if (fs.exists(path)) {
                    RemoteIterator<LocatedFileStatus> it = fs.listFiles(path, true);
                    while (it.hasNext()) {
                        lines += countLines(fs, it.next().getPath());
                        files++;
                    }
                }
                out.println("COUNT " + lines + " " + files);
                return;
            }
            case "DELETE": {
                fs.delete(path, true);
                String under = path.toUri().getPath() + "/";
                counted.keySet().removeIf(k -> k.startsWith(under));
                out.println("DELETED");
                return;
            }
            case "REPLICATION": {
                out.println("REPLICATION " + fs.getServerDefaults(path).getReplication());
                return;
            }
            case "SEQ": {
                try (SequenceFile.Reader r = new SequenceFile.Reader(conf, SequenceFile.Reader.file(fs.makeQualified(path)))) {
                    CompressionCodec c = r.getCompressionCodec();
                    out.println("META " + r.getKeyClassName() + " " + r.getValueClassName() + " " + r.isCompressed()
                            + " " + r.isBlockCompressed() + " " + (c == null ? "none" : c.getClass().getName()));
                    Writable key = (Writable) ReflectionUtils.newInstance(r.getKeyClass(), conf);
                    Writable value = (Writable) ReflectionUtils.newInstance(r.getValueClass(), conf);
                    while (r.next(key, value)) {
                        byte[] v;
                        if (value instanceof BytesWritable) {
                            v = ((BytesWritable) value).copyBytes();
                        } else {
                            v = ((Text) value).copyBytes();
                        }
                        out.println("REC " + ((LongWritable) key).get() + " " + b64(v));
                    }
                }
                return;
            }
            case "TEXT": {
                try (InputStream s = open(fs, conf, path)) {
                    BufferedReader r = new BufferedReader(new InputStreamReader(s, StandardCharsets.UTF_8));
                    String l;
                    while ((l = r.readLine()) != null) {
                        out.println("LINE " + b64(l.getBytes(StandardCharsets.UTF_8)));
                    }
                }
                return;
            }
            case "AVRO": {
                try (InputStream s = open(fs, conf, path);
                     DataFileStream<GenericRecord> r = new DataFileStream<>(s, new GenericDatumReader<GenericRecord>())) {
                    for (GenericRecord rec : r) {
                        StringBuilder h = new StringBuilder();
                        @SuppressWarnings("unchecked")
                        Map<Object, Object> headers = (Map<Object, Object>) rec.get("headers");
                        for (Map.Entry<String, String> e : new java.util.TreeMap<>(stringKeys(headers)).entrySet()) {
                            if (h.length() > 0) {
                                h.append('&');
                            }
                            h.append(e.getKey()).append('=').append(e.getValue());
                        }
                        ByteBuffer body = (ByteBuffer) rec.get("body");
                        byte[] b = new byte[body.remaining()];
                        body.get(b);
                        out.println("REC " + b64(h.toString().getBytes(StandardCharsets.UTF_8)) + " " + b64(b));
                    }
                }
                return;
            }
            default:
                throw new IllegalArgumentException("unknown command " + cmd);
        }
    }

    /** Per path: bytes already counted, and the newlines in them (for COUNT). */
    static final Map<String, long[]> counted = new java.util.HashMap<>();

    /**
     * Newlines in the file, reading only the bytes past what an earlier COUNT read; 0 for a
     * file renamed or deleted since it was listed (a roll: a later COUNT finds its new name).
     */
    static long countLines(FileSystem fs, Path path) throws Exception {
        long[] done = counted.computeIfAbsent(path.toUri().getPath(), k -> new long[2]);
        byte[] buf = new byte[1 << 20];
        FSDataInputStream opened;
        try {
            opened = fs.open(path);
        } catch (java.io.FileNotFoundException e) {
            return 0;
        }
        try (FSDataInputStream in = opened) {
            long visible = in instanceof HdfsDataInputStream
                    ? ((HdfsDataInputStream) in).getVisibleLength()
                    : fs.getFileStatus(path).getLen();
            if (visible < done[0]) {  // cut shorter (a recovery): count it again
                done[0] = 0;
                done[1] = 0;
            }
            in.seek(done[0]);
            int n;
            while ((n = in.read(buf)) > 0) {
                for (int i = 0; i < n; i++) {
                    if (buf[i] == '\n') {
                        done[1]++;
                    }
                }
                done[0] += n;
            }
        }
        return done[1];
    }

    static Map<String, String> stringKeys(Map<Object, Object> m) {
        java.util.Map<String, String> out = new java.util.HashMap<>();
        for (Map.Entry<Object, Object> e : m.entrySet()) {
            out.put(e.getKey().toString(), e.getValue().toString());
        }
        return out;
    }

    /** The file's bytes, decompressed by the codec its extension names (as `hadoop fs -text`). */
    static InputStream open(FileSystem fs, Configuration conf, Path path) throws Exception {
        FSDataInputStream raw = fs.open(path);
        CompressionCodec codec = new CompressionCodecFactory(conf).getCodec(path);
        return codec == null ? raw : codec.createInputStream(raw);
    }
}
